console.log('airflow-downgrade-guard');
